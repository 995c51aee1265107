"""The post-hoc rows' job: the trained baseline with its classifier rescaled or replaced."""

from __future__ import annotations

from pathlib import Path

import torch

from bags.data.counts import read_counts
from bags.data.dataset import DetectionDataset
from bags.engine.model_files import load_model, make_detector, save_model
from bags.methods import MethodSpec, PosthocData, TrainingStats


def posthoc_job(
    baseline: Path,
    method: dict,
    counts: Path,
    annotations: Path,
    images: Path,
    out: Path,
    data_options: dict | None = None,
) -> None:
    """Apply the method's post-hoc rule to ``baseline`` (trained on ``annotations``, whose
    images the rule may read) and save the result as a model file."""
    spec = MethodSpec.from_dict(method)
    if spec.posthoc is None:
        raise ValueError("the method names no post-hoc rule")
    model, meta = load_model(baseline)
    train = DetectionDataset(annotations, images, **(data_options or {}))
    stats = TrainingStats.from_dataset(train, read_counts(counts))
    with torch.no_grad():
        spec.apply_posthoc(model, stats, PosthocData(train=train))
    meta = {**meta, **model.roi_heads.classifier.meta(), "method": method}
    make_detector(meta)
    save_model(out, model, meta)
