"""Detections of a trained detector, streamed to an LVIS results JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate
from bags.engine.device import pick_device
from bags.engine.model_files import check_classes, load_model
from bags.io import atomic_path


def image_results(detections: dict[str, torch.Tensor], image_id: int, category_of) -> list[dict]:
    """One image's detections as LVIS result records (xywh boxes, dataset category ids)."""
    boxes = detections["boxes"].float().cpu()
    boxes[:, 2:] -= boxes[:, :2]
    return [
        {
            "image_id": image_id,
            "category_id": category_of[label],
            "bbox": [round(v, 2) for v in box],
            "score": score,
        }
        for box, label, score in zip(
            boxes.tolist(), detections["labels"].tolist(), detections["scores"].float().tolist()
        )
    ]


@torch.no_grad()
def predict_to_file(
    model: FasterRCNN,
    dataset: DetectionDataset,
    out: Path,
    batch_size: int = 16,
    device: torch.device | None = None,
    workers: int = 0,
) -> int:
    """Write ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]`` for every
    image, one batch at a time (memory stays bounded on a large val split). Returns the count."""
    device = device or torch.device("cpu")
    model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate, num_workers=workers)
    written = 0
    with atomic_path(out) as tmp, tmp.open("w") as file:
        file.write("[")
        for images, targets in tqdm(loader, desc="inference", leave=False, mininterval=2):
            outputs = model([image.to(device) for image in images])
            for detections, target in zip(outputs, targets):
                for record in image_results(
                    detections, int(target["image_id"]), dataset.category_of
                ):
                    file.write(("," if written else "") + json.dumps(record))
                    written += 1
        file.write("]")
    return written


def infer_job(
    model_file: Path,
    annotations: Path,
    images: Path,
    out: Path,
    score_thresh: float,
    detections_per_img: int,
    batch_size: int = 16,
    workers: int = 0,
    device: str = "auto",
    data_options: dict | None = None,
) -> int:
    """Detections of a model file on a dataset, as an LVIS results JSON. Returns the count."""

    model, meta = load_model(model_file, score_thresh, detections_per_img)
    dataset = DetectionDataset(annotations, images, **(data_options or {}))
    check_classes(model_file, meta, dataset.category_ids, annotations)
    target = pick_device(device)
    return predict_to_file(model, dataset, out, batch_size, target, workers)
