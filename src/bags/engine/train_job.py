"""One row's training job: where it starts, its classifier, then the training loop."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN

from bags.builders import build_detector
from bags.data.counts import read_counts
from bags.data.dataset import DetectionDataset
from bags.detector import fresh_predictor, set_classifier
from bags.digest import sha256_file
from bags.engine.device import pick_device
from bags.engine.model_files import load_model, make_detector
from bags.engine.settings import TrainConfig
from bags.engine.train import Stopped, train
from bags.methods import MethodSpec
from bags.training_stats import TrainingStats

log = logging.getLogger(__name__)


def start_model(
    start: Path | None, arch: dict, num_classes: int, seed: int
) -> tuple[FasterRCNN, dict[str, Any]]:
    """Where a row starts: the architecture's initial weights (no ``start``), or a trained
    model; one trained on other classes gets a fresh box predictor, as the reference's start
    from COCO does."""
    torch.manual_seed(seed)
    if start is None:
        return build_detector(arch, num_classes), {"arch": arch, "num_classes": num_classes}
    model, meta = load_model(start)
    if meta["num_classes"] != num_classes:
        fresh_predictor(model, num_classes)
    # Checkpoints record which model they went on from: a retrained start restarts them.
    return model, {"arch": meta["arch"], "num_classes": num_classes, "start": sha256_file(start)}


def train_job(
    annotations: Path,
    images: Path,
    counts: Path,
    arch: dict,
    settings: dict,
    method: dict,
    out: Path,
    epoch_log: Path,
    work_dir: Path,
    start: Path | None = None,
    groups_file: Path | None = None,
    data_options: dict | None = None,
    device: str = "auto",
) -> None:
    """Train one row's model from where it starts; rerunning resumes from ``work_dir``."""
    config = TrainConfig.from_dict(settings)
    spec = MethodSpec.from_dict(method)
    dataset = DetectionDataset(annotations, images, config.hflip, **(data_options or {}))
    stats = TrainingStats.from_dataset(dataset, read_counts(counts))
    model, meta = start_model(start, arch, dataset.num_classes, config.seed)
    classifier = spec.classifier(stats, groups_file)
    torch.manual_seed(config.seed)  # a fresh last layer starts the same way on any path
    model = set_classifier(model, classifier, spec.new_layer)
    meta = {**meta, **classifier.meta(), "method": asdict(spec)}
    meta["category_ids"] = dataset.category_ids  # what its classes 1..C are
    make_detector(meta)  # fail now, not after training, if meta cannot be rebuilt
    target = pick_device(device)
    log.info("training on %s, lr %.4g for batch %d", target, config.scaled_lr(), config.batch_size)
    try:
        train(
            model, dataset, config, meta, out, work_dir, epoch_log, target, spec.epoch_images(stats)
        )
    except Stopped as stopped:
        log.warning("%s", stopped)
        raise SystemExit(143) from None  # 128 + SIGTERM, as if the signal had ended it
