"""Kang et al.'s changes to a trained classifier ("Decoupling Representation and Classifier"):
tau-norm of the last layer, and the class centres that nearest class mean scores by."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate
from bags.detector import backbone_features, box_head_features


@torch.no_grad()
def tau_normalize(layer: nn.Linear, tau: float, rows: torch.Tensor) -> nn.Linear:
    """Kang et al.'s tau-norm as the reference applies it: each class row w_c <- w_c /
    ||w_c||^tau; the other rows (background) and the bias are kept. Returns a new layer."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    new = nn.Linear(layer.in_features, layer.out_features).to(layer.weight.device)
    new.load_state_dict(layer.state_dict())
    weight = layer.weight[rows]
    new.weight[rows] = weight / weight.norm(dim=1, keepdim=True).clamp(min=1e-12) ** tau
    return new


@torch.no_grad()
def class_centres(
    model: FasterRCNN,
    dataset: DetectionDataset,
    source: str,
    batch_size: int = 16,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(C, D) mean feature of each class's ground-truth boxes in ``dataset``, as the frozen
    ``model`` sees them: ``fc``, the last fc layer before its ReLU; ``pooled``, the RoIAlign
    features flattened. A class without boxes gets a zero centre."""
    device = device or torch.device("cpu")
    model.to(device).eval()
    sums, counts = None, torch.zeros(dataset.num_classes)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for images, targets in tqdm(loader, desc="class centres", leave=False, mininterval=2):
        images = [image.to(device) for image in images]
        targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        images, targets = model.transform(images, targets)
        features = backbone_features(model, images)
        boxes = [t["boxes"] for t in targets]
        pooled = model.roi_heads.box_roi_pool(features, boxes, images.image_sizes)
        feature = pooled.flatten(1) if source == "pooled" else box_head_features(model, pooled)[0]
        labels = torch.cat([t["labels"] for t in targets]).cpu() - 1
        if sums is None:
            sums = torch.zeros(dataset.num_classes, feature.shape[1], dtype=torch.float64)
        sums.index_add_(0, labels, feature.double().cpu())
        counts += torch.bincount(labels, minlength=dataset.num_classes)
    if sums is None:
        raise ValueError(f"{dataset.annotation_file}: no images to compute class centres on")
    return (sums / counts.clamp(min=1)[:, None]).float()
