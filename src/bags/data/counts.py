"""Per-category training instance and image counts: the file's own where it states them (LVIS's
category records), else counted from the annotations."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd

from bags.data.annotations import load_annotations
from bags.io import atomic_path

log = logging.getLogger(__name__)
COUNT_FIELDS = ("instance_count", "image_count")


def count_instances(annotation_file: Path | str, on_bad: str = "stop") -> pd.DataFrame:
    """One row per category (ascending id): ``category_id, name, frequency, instance_count,
    image_count``. A count the category record states is taken as it is, as the reference makes
    its groups from LVIS's ``instance_count``; a count it lacks is counted from the boxes.
    Stated counts that disagree with the boxes are reported in one warning."""
    data = load_annotations(annotation_file, on_bad, keep_segmentation=False)
    counted = {
        "instance_count": Counter(a["category_id"] for a in data["annotations"]),
        "image_count": Counter(
            cid for cid, _ in {(a["category_id"], a["image_id"]) for a in data["annotations"]}
        ),
    }
    rows = []
    mismatched = []
    for category in sorted(data["categories"], key=lambda c: c["id"]):
        cid = category["id"]
        name = category.get("name", str(cid))
        row = {"category_id": cid, "name": name, "frequency": category.get("frequency", "")}
        for field in COUNT_FIELDS:
            boxes = counted[field][cid]
            stated = category.get(field)
            if stated is None:
                row[field] = boxes
                continue
            if not isinstance(stated, int) or isinstance(stated, bool) or stated < 0:
                raise ValueError(
                    f"{annotation_file}: category {cid} has {field} {stated!r}, not an integer >= 0"
                )
            if stated != boxes:
                mismatched.append(f"{name} {field} {stated} (counted {boxes})")
            row[field] = stated
        rows.append(row)
    if mismatched:
        log.warning(
            "%s: %d stated count(s) differ from the boxes counted, e.g. %s; using the stated "
            "counts",
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
