"""Saving and loading trained detectors with what is needed to rebuild them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torchvision.models.detection import FasterRCNN

from bags.builders import build_detector
from bags.classifiers import from_meta
from bags.data.counts import read_counts
from bags.detector import classification_layer, num_classes_of, set_classifier
from bags.io import atomic_path
from bags.safe_load import load_weights_only, one_line
from bags.values import is_int
from bags.weight_norms import class_weight_norms

MAX_CLASSES = 100_000  # LVIS has 1203: a larger count is a damaged or hostile file


def make_detector(
    meta: dict[str, Any], score_thresh: float | None = None, detections_per_img: int | None = None
) -> FasterRCNN:
    """Build the detector ``meta`` describes: arch, num_classes, classifier (and groups)."""
    model = build_detector(meta["arch"], meta["num_classes"])
    classifier = from_meta(meta)
    return set_classifier(model, classifier, False, score_thresh, detections_per_img)


def save_model(path: Path | str, model: FasterRCNN, meta: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save({"meta": meta, "state_dict": model.state_dict()}, tmp)


def read_model_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    content = load_weights_only(path, "readable model file")
    if (
        not isinstance(content, dict)
        or not isinstance(content.get("meta"), dict)
        or not isinstance(content.get("state_dict"), dict)
    ):
        raise ValueError(f"{path}: not a bags model file (expected 'meta' and 'state_dict')")
    meta = content["meta"]
    missing = {"arch", "num_classes", "classifier"} - set(meta)
    if missing:
        raise ValueError(f"{path}: model description lacks {sorted(missing)}")
    if meta["classifier"] == "bags" and "groups" not in meta:
        raise ValueError(f"{path}: model description lacks 'groups' (its classifier is bags)")
    count = meta["num_classes"]
    if not (is_int(count) and 1 <= count <= MAX_CLASSES):
        raise ValueError(f"{path}: model description has num_classes {count!r}")
    ids = meta.get("category_ids", list(range(1, count + 1)))
    if not (isinstance(ids, list) and len(ids) == count and all(map(is_int, ids))):
        raise ValueError(f"{path}: model description's category_ids are not {count} integers")
    weights = content["state_dict"]
    for name, tensor in weights.items():
        if not (isinstance(name, str) and isinstance(tensor, torch.Tensor)):
            raise ValueError(f"{path}: weights are not tensors by name ({name!r})")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{path}: weight {name} holds NaN or infinity")
    return content


def load_model(
    path: Path | str, score_thresh: float | None = None, detections_per_img: int | None = None
) -> tuple[FasterRCNN, dict[str, Any]]:
    content = read_model_file(path)
    try:
        model = make_detector(content["meta"], score_thresh, detections_per_img)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a description from elsewhere
        raise ValueError(
            f"{path}: its description makes no detector ({one_line(error)})"
        ) from error
    try:
        model.load_state_dict(content["state_dict"])
    except RuntimeError as error:
        raise ValueError(
            f"{path}: weights do not fit the detector it describes ({one_line(error)})"
        ) from error
    return model, content["meta"]


def check_classes(model_file: Path | str, meta: dict[str, Any], ids: list, source: Path) -> None:
    """A detector labels only data of its own categories (``ids``, ascending, in ``source``):
    as many, and the same ids where the model file records them."""
    if len(ids) != meta["num_classes"] or meta.get("category_ids", ids) != ids:
        raise ValueError(
            f"{model_file}: a detector of {meta['num_classes']} classes (other categories "
            f"than the {len(ids)} of {source})"
        )


def write_norms(model: FasterRCNN, counts: pd.DataFrame, out: Path | str) -> None:
    """The per-class weight norms of the model's last layer beside the class counts (CSV)."""
    if len(counts) != num_classes_of(model):
        raise ValueError(
            f"{len(counts)} classes in the counts, the model has {num_classes_of(model)}"
        )
    table = counts[["category_id", "name", "instance_count"]].copy()
    rows = model.roi_heads.classifier.class_rows
    table["norm"] = class_weight_norms(classification_layer(model), rows).numpy()
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)


def norms_job(model_file: Path, counts: Path, out: Path) -> None:
    """``write_norms`` of a model file and the counts CSV of its training set."""
    model, meta = load_model(model_file)
    table = read_counts(counts)
    check_classes(model_file, meta, table["category_id"].tolist(), counts)
    write_norms(model, table, out)
