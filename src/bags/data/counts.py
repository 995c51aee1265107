"""Per-category training instance and image counts, counted from the annotations."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from bags.data.annotations import load_annotations
from bags.io import atomic_path

log = logging.getLogger(__name__)


def count_instances(annotation_file: Path | str, on_bad: str = "stop") -> pd.DataFrame:
    """One row per category (ascending id): ``category_id, name, frequency, instance_count,
    image_count``. Where the file has count fields that disagree with the boxes, warn."""
    data = load_annotations(annotation_file, on_bad, keep_segmentation=False)
    instances = Counter(a["category_id"] for a in data["annotations"])
    images = Counter(
        cid for cid, _ in {(a["category_id"], a["image_id"]) for a in data["annotations"]}
    )
    rows = []
    mismatched = []
    for category in sorted(data["categories"], key=lambda c: c["id"]):
        cid = category["id"]
        row = {
            "category_id": cid,
            "name": category.get("name", str(cid)),
            "frequency": category.get("frequency", ""),
            "instance_count": instances[cid],
            "image_count": images[cid],
        }
        for field in ("instance_count", "image_count"):
            if field in category and category[field] != row[field]:
                mismatched.append(f"{row['name']} {field} {category[field]} != {row[field]}")
        rows.append(row)
    if mismatched:
        log.warning(
            "%s: %d count field(s) disagree with the boxes counted, e.g. %s; using the counted "
            "values",
            annotation_file,
            len(mismatched),
            "; ".join(mismatched[:3]),
        )
    return pd.DataFrame(rows)


def read_counts(path: Path | str) -> pd.DataFrame:
    """A counts CSV as ``count_instances`` writes it, checked; rows in category id order."""
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a counts CSV ({' '.join(str(error).split())})") from error
    missing = {"category_id", "name", "instance_count"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: counts CSV lacks column(s) {sorted(missing)}")
    if table.empty:
        raise ValueError(f"{path}: counts CSV has no categories")
    for column in ("category_id", "instance_count", "image_count"):
        if column in table and not (
            pd.api.types.is_integer_dtype(table[column]) and (table[column] >= 0).all()
        ):
            raise ValueError(f"{path}: column {column!r} must hold integers >= 0")
    repeated = table["category_id"][table["category_id"].duplicated()]
    if len(repeated):
        raise ValueError(f"{path}: category id {repeated.iloc[0]} appears twice")
    return table.sort_values("category_id").reset_index(drop=True)


def write_counts(annotations: Path, out: Path, on_bad: str = "stop") -> None:
    """``count_instances`` as a CSV file."""
    table = count_instances(annotations, on_bad)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
