"""torchvision's COCO-trained Faster R-CNN R50-FPN as a model file of the pipeline."""

from __future__ import annotations

from pathlib import Path

import torch

from bags.builders import build_detector
from bags.data.annotations import load_annotations
from bags.detector import to_softmax
from bags.engine.model_files import save_model
from bags.safe_load import load_weights_only, one_line


def coco_state_for(state: dict, category_ids: list[int]) -> dict:
    """torchvision's 91-way COCO box predictor cut to ``category_ids`` (background first), as
    the head is indexed by COCO category id."""
    rows = torch.tensor([0, *category_ids])
    boxes = (rows[:, None] * 4 + torch.arange(4)).reshape(-1)
    prefix = "roi_heads.box_predictor."
    state = dict(state)
    for name, index in (("cls_score", rows), ("bbox_pred", boxes)):
        for part in ("weight", "bias"):
            state[f"{prefix}{name}.{part}"] = state[f"{prefix}{name}.{part}"][index]
    return state


def import_coco(weights: Path, annotations: Path, arch: dict, out: Path) -> None:
    """The COCO-trained detector for the categories of a COCO train JSON, as a model file."""
    data = load_annotations(annotations, keep_segmentation=False)
    ids = sorted(c["id"] for c in data["categories"])
    if not ids or ids[0] < 1 or ids[-1] > 90:
        raise ValueError(f"{annotations}: COCO category ids run 1..90")
    state = load_weights_only(weights, "readable checkpoint")
    try:
        model = to_softmax(build_detector(arch, len(ids)))
        model.load_state_dict(coco_state_for(state, ids))
    except (KeyError, IndexError, RuntimeError, TypeError) as error:
        raise ValueError(
            f"{weights}: not torchvision's COCO Faster R-CNN ({one_line(error)})"
        ) from error
    meta = {"arch": arch, "num_classes": len(ids), "classifier": "softmax", "category_ids": ids}
    save_model(out, model, meta)
