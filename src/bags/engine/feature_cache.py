"""Box-head features of a frozen detector, computed once per image.

A method that retrains only the last layer sees, in every epoch, the same RoI candidates and
the same features of them: the backbone, RPN and box head are frozen, so only which RoIs are
sampled changes. Caching every candidate's features (and sampling from them each step with the
detector's own sampler) gives the same training for the cost of a linear layer. Scoring is
cached the same way: proposals, features and box deltas, the last layer applied per method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate
from bags.detector import backbone_features
from bags.digest import sha256_file
from bags.engine.model_files import check_classes, load_model
from bags.io import atomic_path
from bags.safe_load import load_weights_only


@dataclass
class TrainingFeatures:
    """Per training image: every RoI candidate's features and matched label (0 background,
    -1 ignored), and the image's box labels."""

    features: list[torch.Tensor]
    labels: list[torch.Tensor]
    image_classes: list[list[int]]


@dataclass
class ScoringFeatures:
    """Per evaluated image: test-time proposals, their features and class-specific box deltas,
    and the sizes that map boxes back to the original image."""

    image_ids: list[int]
    proposals: list[torch.Tensor]
    features: list[torch.Tensor]
    box_regression: list[torch.Tensor]
    image_sizes: list[tuple[int, int]]
    original_sizes: list[tuple[int, int]]


@torch.no_grad()
def training_features(
    model: FasterRCNN, dataset: DetectionDataset, batch_size: int = 16
) -> TrainingFeatures:
    """As classifier-only training sees them: the RPN in training mode (its training proposal
    count), the ground truth added to the proposals, frozen batch-norm statistics."""
    model.train()
    model.backbone.eval()
    heads = model.roi_heads
    out = TrainingFeatures([], [], [])
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for images, targets in tqdm(loader, desc="training features", leave=False, mininterval=2):
        targets = [{k: v for k, v in t.items() if k != "image_id"} for t in targets]
        images, targets = model.transform(list(images), targets)
        features = backbone_features(model, images)
        proposals, _ = model.rpn(images, features, targets)
        gt_boxes = [t["boxes"] for t in targets]
        gt_labels = [t["labels"] for t in targets]
        proposals = heads.add_gt_proposals(proposals, gt_boxes)
        _, labels = heads.assign_targets_to_proposals(proposals, gt_boxes, gt_labels)
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, images.image_sizes))
        out.features += box_features.split([len(p) for p in proposals])
        out.labels += labels
        out.image_classes += [t.tolist() for t in gt_labels]
    return out


@torch.no_grad()
def scoring_features(
    model: FasterRCNN, dataset: DetectionDataset, batch_size: int = 16
) -> ScoringFeatures:
    """As inference sees them: test-time proposals, box-head features and box deltas."""
    model.eval()
    heads = model.roi_heads
    out = ScoringFeatures([], [], [], [], [], [])
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    for images, targets in tqdm(loader, desc="scoring features", leave=False, mininterval=2):
        out.original_sizes += [tuple(image.shape[-2:]) for image in images]
        images, _ = model.transform(list(images))
        features = backbone_features(model, images)
        proposals, _ = model.rpn(images, features)
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, images.image_sizes))
        regression = heads.box_predictor.bbox_pred(box_features.flatten(1))
        sizes = [len(p) for p in proposals]
        out.image_ids += [int(t["image_id"]) for t in targets]
        out.proposals += proposals
        out.features += box_features.split(sizes)
        out.box_regression += regression.split(sizes)
        out.image_sizes += [tuple(s) for s in images.image_sizes]
    return out


def save_features(
    features: TrainingFeatures | ScoringFeatures, path: Path | str, model_sha256: str | None = None
) -> None:
    """One file; per-image tensors stored contiguously (cheap to write and read). It records
    the sha256 of the model file the features came from."""
    document = {"kind": type(features).__name__, "model_sha256": model_sha256}
    for name, value in vars(features).items():
        if value and isinstance(value[0], torch.Tensor):
            document[name] = torch.cat(value)
            document[name + "_sizes"] = [len(v) for v in value]
        else:
            document[name] = value
    with atomic_path(path) as tmp:
        torch.save(document, tmp)


def load_features(
    path: Path | str, model_sha256: str | None = None
) -> TrainingFeatures | ScoringFeatures:
    """The features in ``path``; given ``model_sha256``, refused unless they came from the model
    file with that sha256 (a method fitted on them replaces that model's last layer)."""
    document = load_weights_only(path, "feature cache file")
    try:
        made_from = document.pop("model_sha256", None)
        kind = {"TrainingFeatures": TrainingFeatures, "ScoringFeatures": ScoringFeatures}[
            document.pop("kind")
        ]
        fields = {}
        for name in kind.__dataclass_fields__:
            if name + "_sizes" in document:
                fields[name] = list(document[name].split(document[name + "_sizes"]))
            else:
                fields[name] = document[name]
        features = kind(**fields)
    except Exception as error:  # a damaged or foreign file
        raise ValueError(f"{path}: not a feature cache file ({error!r})") from error
    if model_sha256 is not None and made_from != model_sha256:
        raise ValueError(
            f"{path}: made from another model (sha256 {made_from}, this one {model_sha256}); "
            "recompute the cache with this model"
        )
    return features


def cache_job(
    model_file: Path,
    train: Path,
    val: Path,
    images: Path,
    out_dir: Path,
    batch_size: int = 16,
    data_options: dict | None = None,
) -> None:
    """``train.pt`` and ``val.pt`` in ``out_dir``: the frozen model's features of every
    training RoI candidate and of every val image's test-time proposals, each recording the
    sha256 of the model file."""
    model, meta = load_model(model_file)
    made_from = sha256_file(model_file)
    options = data_options or {}
    train_set = DetectionDataset(train, images, **options)
    val_set = DetectionDataset(val, images, **options)  # both checked before anything is written
    for data, path in ((train_set, train), (val_set, val)):
        check_classes(model_file, meta, data.category_ids, path)
    training = training_features(model, train_set, batch_size)
    save_features(training, Path(out_dir) / "train.pt", made_from)
    scoring = scoring_features(model, val_set, batch_size)
    save_features(scoring, Path(out_dir) / "val.pt", made_from)
