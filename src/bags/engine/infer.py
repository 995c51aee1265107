"""Detections of a trained detector as an LVIS results list."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate


@torch.no_grad()
def predict(model: FasterRCNN, dataset: DetectionDataset, batch_size: int = 16) -> list[dict]:
    """``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]`` for every image."""
    model.eval()
    results = []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for images, targets in tqdm(loader, desc="inference", leave=False, mininterval=2):
        for detections, target in zip(model(list(images)), targets):
            boxes = detections["boxes"].clone()
            boxes[:, 2:] -= boxes[:, :2]
            image_id = int(target["image_id"])
            for box, label, score in zip(
                boxes.tolist(), detections["labels"].tolist(), detections["scores"].tolist()
            ):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": dataset.category_of[label],
                        "bbox": [round(v, 2) for v in box],
                        "score": round(score, 5),
                    }
                )
    return results
