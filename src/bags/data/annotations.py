"""Reading LVIS/COCO-format annotation files, with one clear error per problem."""

from __future__ import annotations

import gc
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from bags.values import finite, is_int

log = logging.getLogger(__name__)


FREQUENCIES = ("r", "c", "f")  # LVIS's rare, common, frequent


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file, the record and the field."""


def _fail(path: Path, what: str) -> AnnotationError:
    return AnnotationError(f"{path}: {what}")


def load_annotations(
    path: Path | str,
    on_bad: str = "stop",
    *,
    keep_segmentation: bool = True,
    keep_outside: bool = False,
) -> dict[str, Any]:
    """Load and check an annotation file: images, annotations and categories, ids consistent.

    A bad annotation (id used before, unknown image or category, malformed or non-finite box,
    box of non-positive size or outside its image) stops with an error (``on_bad="stop"``) or is
    dropped and counted (``on_bad="skip"``, one warning with the count per reason). No
    categories, and an id used twice by categories or by images, are always errors: what the
    file means is then unknown. ``keep_segmentation=False``
    drops each annotation's ``segmentation`` as it is parsed, for callers that need only the
    boxes: the polygons are most of the memory (an 830 MB LVIS v1-like file: 5.3 GB peak with
    them, 1.8 GB without). ``keep_outside=True`` takes boxes that reach outside their image as
    they are (the reference's reading of LVIS; ``DetectionDataset`` clips them).
    """
    if on_bad not in ("stop", "skip"):
        raise ValueError(f"on_bad must be 'stop' or 'skip', got {on_bad!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found")
    try:
        data = _read_json(path, keep_segmentation)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _fail(path, f"not valid JSON ({error})") from error
    check_annotations(data, path, on_bad, keep_outside=keep_outside)
    return data


def check_annotations(
    data: Any,
    path: Path,
    on_bad: str = "stop",
    *,
    keep_outside: bool = False,
    keep_crowd: bool = False,
    image_files: bool = True,
) -> None:
    """Check parsed annotations as ``load_annotations`` does: the one check of every reader.

    Bad annotations stop or are removed from ``data`` (``on_bad``); crowd regions are removed
    too unless ``keep_crowd`` (evaluation keeps the file's annotations as they are).
    ``image_files=False``: images need not name a file (evaluation reads none).
    """
    if not isinstance(data, dict):
        raise _fail(path, "expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise _fail(path, f"missing or non-list field {key!r}")
    category_ids = _category_ids(data["categories"], path)
    sizes = _image_sizes(data["images"], path, image_files)
    kept, skipped, crowds, seen = [], Counter(), 0, set()
    for annotation in data["annotations"]:
        problem = _problem(annotation, sizes, category_ids, seen, keep_outside)
        if problem is None:
            if annotation.get("iscrowd") and not keep_crowd:
                crowds += 1  # COCO crowd regions are neither trained on nor counted
            else:
                kept.append(annotation)
            continue
        reason, detail = problem
        name = annotation.get("id") if isinstance(annotation, dict) else annotation
        if on_bad == "stop":
            raise _fail(path, f"annotation {name!r}: {detail}")
        skipped[reason] += 1
    if crowds:
        log.info("%s: left out %d crowd annotation(s)", path, crowds)
    if skipped:
        log.warning(
            "%s: skipped %d bad annotation(s): %s",
            path,
            sum(skipped.values()),
            ", ".join(f"{n} {reason}" for reason, n in skipped.most_common()),
        )
    if skipped or crowds:
        data["annotations"] = kept


def _category_ids(categories: list, path: Path) -> set[int]:
    """The category ids; no categories, or an id used twice, is an error."""
    if not categories:
        raise _fail(path, "no categories: 'categories' is an empty list")
    ids: set[int] = set()
    for category in categories:
        if not isinstance(category, dict) or not is_int(category.get("id")):
            raise _fail(path, f"category {category!r}: expected an integer 'id'")
        if category["id"] in ids:
            raise _fail(path, f"category {category['id']}: id used by an earlier category")
        if not isinstance(category.get("name", ""), str):
            raise _fail(path, f"category {category['id']}: 'name' must be a string")
        if category.get("frequency", "r") not in FREQUENCIES:
            raise _fail(path, f"category {category['id']}: 'frequency' must be r, c or f")
        ids.add(category["id"])
    return ids


def _image_sizes(images: list, path: Path, files: bool = True) -> dict[int, tuple[int, int]]:
    """(width, height) by image id; an id used twice, or a bad size or path, is an error."""
    sizes: dict[int, tuple[int, int]] = {}
    for image in images:
        if not isinstance(image, dict) or not is_int(image.get("id")):
            raise _fail(path, f"image {image!r}: expected an integer 'id'")
        if image["id"] in sizes:
            # Never skipped: which image its annotations belong to is unknown.
            raise _fail(path, f"image {image['id']}: id used by an earlier image")
        for field in ("width", "height"):
            if not is_int(image.get(field)) or image[field] <= 0:
                raise _fail(path, f"image {image['id']}: {field!r} must be a positive integer")
        if files and "file_name" not in image and "coco_url" not in image:
            raise _fail(path, f"image {image['id']}: needs 'file_name' or 'coco_url'")
        for field in ("file_name", "coco_url"):
            if field in image and not (isinstance(image[field], str) and image[field]):
                raise _fail(path, f"image {image['id']}: {field!r} must be a non-empty string")
        sizes[image["id"]] = (image["width"], image["height"])
    return sizes


def _read_json(path: Path, keep_segmentation: bool) -> Any:
    """``json.loads`` of the file with the cyclic garbage collector paused: parsed JSON holds no
    cycles, and on LVIS size the collector's passes over millions of new lists and dicts add
    about a third to the parse time."""
    text = path.read_text()
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json.loads(text, object_hook=None if keep_segmentation else _drop_segmentation)
    finally:
        if enabled:
            gc.enable()


def _drop_segmentation(record: dict[str, Any]) -> dict[str, Any]:
    record.pop("segmentation", None)
    return record


BOX_TOLERANCE = 1.0  # pixels a box may stick out of its image (rounding in the source data)


def _problem(
    annotation: Any, sizes: dict, category_ids: set, seen: set, keep_outside: bool = False
) -> tuple[str, str] | None:
    """(reason, detail) of what is wrong with one annotation, or None. ``seen``: the ids of the
    annotations before it (this one's is added)."""
    if not isinstance(annotation, dict):
        return "not an object", "expected an object"
    if "id" in annotation:
        if not is_int(annotation["id"]):
            return "malformed id", f"'id' must be an integer, got {annotation['id']!r}"
        if annotation["id"] in seen:
            return "duplicate id", "id used by an earlier annotation"
        seen.add(annotation["id"])
    image_id = annotation.get("image_id")
    image = sizes.get(image_id) if is_int(image_id) else None
    if image is None:
        return "unknown image_id", f"unknown image_id {image_id!r}"
    category_id = annotation.get("category_id")
    if not is_int(category_id) or category_id not in category_ids:
        return "unknown category_id", f"unknown category_id {category_id!r}"
    if annotation.get("iscrowd", 0) not in (0, 1):
        return "malformed iscrowd", f"'iscrowd' must be 0 or 1, got {annotation['iscrowd']!r}"
    box = annotation.get("bbox")
    if not _four_numbers(box):
        return "malformed bbox", f"'bbox' must be [x, y, width, height], got {box!r}"
    x, y, w, h = box
    if not finite(x + y + w + h):  # NaN or infinity in any of them (JSON allows both)
        return "non-finite bbox", f"'bbox' must hold finite numbers, got {box!r}"
    if w <= 0 or h <= 0:
        return "non-positive size", f"bbox width and height must be > 0, got {box!r}"
    width, height = image
    if not keep_outside and (
        x < -BOX_TOLERANCE
        or y < -BOX_TOLERANCE
        or x + w > width + BOX_TOLERANCE
        or (y + h > height + BOX_TOLERANCE)
    ):
        return "outside the image", f"bbox {box!r} lies outside its {width}x{height} image"
    return None


_NUMBER = (int, float)


def _four_numbers(box: Any) -> bool:
    """A list of four ints or floats. Spelled out: this runs once per box (1.3M on LVIS v1), and
    ``all(isinstance(v, int | float) for v in box)`` is 5x slower."""
    if not isinstance(box, list) or len(box) != 4:
        return False
    x, y, w, h = box
    return (
        type(x) in _NUMBER  # not isinstance: a JSON true is no coordinate
        and type(y) in _NUMBER
        and type(w) in _NUMBER
        and type(h) in _NUMBER
    )


def image_path(image: dict[str, Any], source: str = "file_name") -> str:
    """Path of an image under the image root.

    ``file_name``: the record's file name (COCO, a user's data; ``coco_url`` when it has none).
    ``coco_url``: folder and file from the COCO URL, ``.../train2017/000000391895.jpg`` ->
    ``train2017/000000391895.jpg``; LVIS needs it (v1 has no file names, v0.5's are COCO 2014's).
    """
    if source == "file_name" and "file_name" in image:
        return image["file_name"]
    if "coco_url" not in image:
        raise ValueError(f"image {image.get('id')!r} has no coco_url")
    return "/".join(image["coco_url"].split("/")[-2:])


def frequency(image_count: int) -> str:
    """LVIS frequency by training image count: r 1-10, c 11-100, f > 100."""
    return "r" if image_count <= 10 else "c" if image_count <= 100 else "f"


def contiguous_ids(data: dict[str, Any]) -> dict[int, int]:
    """Category id -> contiguous class 1..C, in ascending id order (0 is background)."""
    return {cid: k for k, cid in enumerate(sorted(c["id"] for c in data["categories"]), start=1)}
